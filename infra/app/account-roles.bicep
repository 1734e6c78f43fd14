// Assigns, on one storage account of this resource group, the custom roles of app-actions.json whose scope
// is scopeKind: an account VHD exports go to, or one whose VHD blobs captures import (VHD sources).
@description('Name of the storage account.')
param accountName string

@description('Which entries to assign here: exportAccounts or vhdSourceAccounts.')
@allowed(['exportAccounts', 'vhdSourceAccounts'])
param scopeKind string = 'exportAccounts'

@description('The roles of app-actions.json.')
param roles array

@description('What the role definitions were named with (main.bicep: the environment name).')
param roleKey string

@description('The app identity\'s object id.')
param principalId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in roles: if (role.scope == scopeKind) {
  name: guid(account.id, roleKey, role.name)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', guid(subscription().id, roleKey, role.name))
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]
