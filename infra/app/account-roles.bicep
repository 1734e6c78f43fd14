// Assigns, on one export storage account of this resource group, the custom roles of app-actions.json
// whose scope is exportAccounts.
@description('Name of the storage account VHD exports may go to.')
param accountName string

@description('The roles of app-actions.json.')
param roles array

@description('What the role definitions were named with (main.bicep: the environment name).')
param roleKey string

@description('The app identity\'s object id.')
param principalId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in roles: if (role.scope == 'exportAccounts') {
  name: guid(account.id, roleKey, role.name)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', guid(subscription().id, roleKey, role.name))
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]
