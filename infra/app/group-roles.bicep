// Assigns, in this resource group, every custom role of app-actions.json whose scope is scopeKind.
@description('The roles of app-actions.json.')
param roles array

@description('Which entries to assign here: sourceGroups, buildGroup or galleries.')
@allowed(['sourceGroups', 'buildGroup', 'galleries'])
param scopeKind string

@description('What the role definitions were named with (main.bicep: the environment name).')
param roleKey string

@description('The app identity\'s object id.')
param principalId string

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in roles: if (role.scope == scopeKind) {
  name: guid(resourceGroup().id, roleKey, role.name)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', guid(subscription().id, roleKey, role.name))
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]
